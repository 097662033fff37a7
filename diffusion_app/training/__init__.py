"""Training: datasets and the trainer that turns an image folder into a diffusers pipeline."""

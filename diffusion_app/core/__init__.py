"""What both the web service and the trainer build on: the denoising loop, the class-conditional pipeline,
schedulers, image grids, PNG parameters and prompt weights. It imports nothing else of the app but settings and
catalog."""

# Runs the app as a Hugging Face Space (Docker SDK) would: port 7860, a non-root user with uid 1000.
FROM python:3.11-slim

RUN useradd --create-home --uid 1000 user
USER user
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    DS_DATA_DIR=/home/user/app/data
WORKDIR /home/user/app

# --build-arg REQUIREMENTS=requirements-ray.txt adds Ray: the image every node of a Ray cluster runs (docs/ray.md).
ARG REQUIREMENTS=requirements.txt
COPY --chown=user requirements*.txt .
RUN pip install --no-cache-dir --user -r ${REQUIREMENTS}

COPY --chown=user . .
EXPOSE 7860
CMD ["python", "app.py"]

# vedit in a container: the API (`vedit serve`) and the Celery worker (`vedit worker`) from
# one image. NOT RUN: written without Docker at hand (docs/deploy.md, "Containers").
FROM python:3.11-slim

RUN useradd --create-home --uid 10001 vedit \
    && mkdir /data && chown vedit:vedit /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# scale: psycopg 3, redis, celery[redis] and boto3.
# mediapipe without its dependencies: only the model files its wheel ships are read.
RUN pip install --no-cache-dir ".[scale]" \
    && pip install --no-cache-dir --no-deps mediapipe==0.10.21

USER vedit
ENV VEDIT_DATA_DIR=/data \
    VEDIT_DISPATCH=celery
EXPOSE 8000
CMD ["vedit", "serve", "--host", "0.0.0.0", "--port", "8000"]

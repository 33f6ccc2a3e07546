# The stacrrn function image: the four AWS Lambda stages and the AWS Batch apply job.
#
#   docker build --platform linux/amd64 -t stacrrn .      (linux/arm64 for architecture = "arm64")
#   docker run -p 9000:8080 stacrrn                        local Lambda emulator, statistics handler
#   docker run stacrrn python -m stacrrn.serverless apply --event s3://bucket/event.json
#
# Lambda runs one handler per function (terraform sets image_config.command to
# stacrrn.serverless.handlers.<stage>); AWS Batch, which cannot override the entrypoint, runs
# a command. The entrypoint below tells the two apart. rasterio's wheels bundle GDAL, so the
# plain Lambda Python base image is enough. See terraform/README.md for pushing to ECR.

FROM public.ecr.aws/lambda/python:3.12

# GDAL defaults for reading COGs from S3/HTTP; a function's environment overrides them.
ENV GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR \
    GDAL_HTTP_MAX_RETRY=5 \
    GDAL_HTTP_RETRY_DELAY=1 \
    CPL_VSIL_CURL_ALLOWED_EXTENSIONS=.tif,.tiff,.TIF,.json \
    VSI_CACHE=TRUE \
    PYTHONPATH=${LAMBDA_TASK_ROOT} \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# `python` for the Batch command, and the entrypoint shared by Lambda and Batch: one argument
# that is not a program is a Lambda handler; anything else is a command to run.
RUN command -v python >/dev/null 2>&1 || ln -s "$(command -v python3)" /usr/local/bin/python \
 && printf '%s\n' \
    '#!/bin/sh' \
    'if [ "$#" -eq 1 ] && ! command -v "$1" >/dev/null 2>&1; then' \
    '  exec /lambda-entrypoint.sh "$1"' \
    'fi' \
    'exec "$@"' \
    > /usr/local/bin/stacrrn-entrypoint \
 && chmod 755 /usr/local/bin/stacrrn-entrypoint

# Dependencies first, in their own layer: it stays cached while only stacrrn's code changes.
COPY pyproject.toml README.md /tmp/stacrrn/
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/stacrrn/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install --target "${LAMBDA_TASK_ROOT}" -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

COPY stacrrn /tmp/stacrrn/stacrrn
RUN pip install --no-deps --target "${LAMBDA_TASK_ROOT}" /tmp/stacrrn \
 && rm -rf /tmp/stacrrn \
 && python3 -c "import stacrrn.serverless.handlers, rasterio; print('stacrrn image: GDAL', rasterio.__gdal_version__)"

WORKDIR ${LAMBDA_TASK_ROOT}
ENTRYPOINT ["/usr/local/bin/stacrrn-entrypoint"]
CMD ["stacrrn.serverless.handlers.statistics"]

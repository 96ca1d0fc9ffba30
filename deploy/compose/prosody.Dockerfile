# Prosody for the container stack: Debian bookworm's package, the same Prosody (0.12) the test suite
# runs. The configuration, the account list and the entry script are mounted by deploy/docker-compose.yml,
# so the image holds nothing of the stack's own.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends prosody \
    && rm -rf /var/lib/apt/lists/*
EXPOSE 5222 5347
CMD ["sh", "/etc/prosody/start.sh"]

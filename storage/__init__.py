"""Storage layer: PostgreSQL schema and repositories, object storage, the Redis event bus."""

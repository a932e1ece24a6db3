"""The gRPC control plane: API handlers, recognition, rules, alerts, event feed and jobs.

Stateless replicas over the storage layer (vigil.storage); shared state lives in PostgreSQL,
Redis and object storage.
"""

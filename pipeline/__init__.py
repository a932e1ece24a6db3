"""Stream processing on pipeline nodes: backends (deepstream on GPU, portable on CPU), stages,
the node agent and the publisher that streams track metadata to the control plane."""

"""SoftStep experiments: neighbour heads vs linear heads, metric learning, sparsity."""

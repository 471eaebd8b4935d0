"""Device protocols in, validated fix batches out (the gateway process)."""

"""OrderHub client: generated gRPC stubs (orderhub.v1) and a typed wrapper (orderhub.client)."""

"""Thin resolvers: read arguments, load through the store, call domain."""

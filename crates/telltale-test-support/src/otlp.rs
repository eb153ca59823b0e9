//! A real OTLP/gRPC trace receiver for tests (feature `otlp`).

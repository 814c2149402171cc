"""The `tator` command line: local stack control and client commands."""

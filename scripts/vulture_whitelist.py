"""Names vulture cannot see used because a library calls them by name. vulture reads this file
with the rest of scripts/; it is never imported. The RPC methods servicers implement are not
listed here: scripts/deadcode.py writes them from protos/ on every run.
"""

_ = object()

# --- grpc.aio.Server interface of benchmarks/prepass.py's in-process server ---
_.add_generic_rpc_handlers
_.add_registered_method_handlers
# --- grpc.aio.ServerInterceptor interface ---
_.intercept_service
# --- attributes set on transformers objects, which read them ---
_.padding_side
_.max_length
_.num_beams
_.num_return_sequences
_.top_k
_.chat_template
# --- module attribute set for its readers (tempfile) ---
_.tempdir

"""Names vulture cannot see used, because gRPC calls them by name: every RPC method a servicer
implements (tests/test_deadcode.py keeps this list equal to the RPCs in protos/), and the
grpc.aio.Server methods the in-process benchmark server provides. `make deadcode` passes this
file to vulture; it is never imported.
"""

_ = object()

# --- RPC methods (protos/) ---
_.CancelJob
_.Caption
_.Classify
_.DeleteGlossary
_.DeleteRecipe
_.Detect
_.Embed
_.ExpandSynonyms
_.ExportRecipe
_.GetCalibrationReport
_.GetGlossary
_.GetJob
_.GetRecipe
_.ImportRecipe
_.ListDatasets
_.ListGlossaries
_.ListJobs
_.ListModels
_.ListRecipes
_.LoadModel
_.Prepass
_.PutGlossary
_.PutRecipe
_.SegmentExemplars
_.SegmentText
_.StartCalibration
_.StartPrepassJob
_.TrainHead
_.UnloadModel
_.WatchJob

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

"""The model library: list, rename, delete, zip export/import (`library`, also importable as
`localswap.models.library`), DeepFaceLive `.dfm` import (`dfm`) and export (`dfm_export`), starting
a model from another (`init_from`, `identity`), models for any target (`any_target`) and the
model card (`card`)."""

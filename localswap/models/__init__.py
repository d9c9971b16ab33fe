"""The model library's formats beyond localswap's own model folder: DeepFaceLive `.dfm`
import (`dfm`) and export (`dfm_export`), starting a model from another (`init_from`) and the
model card (`card`). The library itself (list, zip export/import, rename, delete) lives in
`localswap.library`."""

"""The model library, above training and conversion: list, rename, delete, zip export/import
(`library`), DeepFaceLive `.dfm` export (`dfm_export`; reading a .dfm is convert.dfm), both
people's descriptors (`identity`) and the model card (`card`). The model dir's manifest is
train.manifest, starting a model from another train.init_from, models for any target
train.any_target, and whether a model fits a new video swap.fit."""

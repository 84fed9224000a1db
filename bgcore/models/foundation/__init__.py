"""Foundation-model families: Chronos (the DFM, Chronos-2, Chronos-Bolt, Chronos T5), their weights and pretraining."""

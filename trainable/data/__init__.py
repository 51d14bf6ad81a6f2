"""Data: datasets as uint8 NHWC arrays and the batches made from them.

`datasets` loads CIFAR-10, an image-folder tree (decoded once by `folder` into a cache on disk
that `mapped` reads memory-mapped) or synthetic data, and carves the splits; `datasize` checks
a set fits where it is going; `augment` and `loaders` turn a split into augmented, normalised
batches; `memo` keeps a split's statistics for the next run on the same images in a process.
May import `trainable.config`, `trainable.errors`, `trainable.vocab` and each other;
never the model, the training loop or anything of the tuner."""

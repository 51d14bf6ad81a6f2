"""The GPU session: `gpu` (ceilings, the recipe, host syncs, packing), `packing` (concurrent
trials on one device) and `gpu_session.sh`, the one script a session lent a GPU runs."""

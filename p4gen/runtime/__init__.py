"""The hypervisor side: header layouts, checksums, segmentation (and, next, the pipeline)."""

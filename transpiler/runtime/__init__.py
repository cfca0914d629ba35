"""What runs beside a converted model on the device: TF's SSD postprocessing (:mod:`.ssd_postprocess`), numpy only."""

"""urban-footprint processor: NDBI/NDVI built-up classification per tile, then areas."""

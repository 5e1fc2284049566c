"""ndvi-mosaic processor: NDVI per scene, then a max-NDVI composite and statistics."""

"""In the browser: `real3d serve` (a local web app over the run folders) and `real3d report` (one HTML file)."""

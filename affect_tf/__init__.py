"""affect-tf."""

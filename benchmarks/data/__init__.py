"""Data recipes: bias injection, bundled real images, synthetic chest X-rays, galleries."""

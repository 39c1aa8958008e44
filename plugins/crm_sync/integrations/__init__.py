"""Rules that belong to one integration each."""

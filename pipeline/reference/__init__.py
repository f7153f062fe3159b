"""Reference implementations the tutorials build by hand, kept to check the real ones against."""

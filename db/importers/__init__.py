"""Importers: files an administrator brings (the national CCTV data, zones)
into the store, checked row by row, all or nothing."""

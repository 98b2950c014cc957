"""The pure modelling library: frames and arrays in, arrays and models out; no database, SQL or privacy."""

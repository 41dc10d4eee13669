// Lets a layer library exist before it has sources.

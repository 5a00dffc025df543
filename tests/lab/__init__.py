"""The censorship lab: network namespaces with a client, a censor router and an "internet"."""

"""Supply chain: advisories, the package index, licences, sources and SBOMs."""

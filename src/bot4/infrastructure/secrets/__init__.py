"""Secrets backends behind one interface: a 0600 file store, AWS KMS and PKCS#11 HSMs."""

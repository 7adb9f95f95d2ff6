"""proofs_tests"""

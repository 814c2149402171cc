"""Shared runtime of the Tator services.

Holds only what every service needs: generated stubs (`tator_core.gen`), the
server bootstrap and interceptors, the image store, geometry, labelmap and
glossary handling, settings, the model registry and the client helper.
Nothing model-specific lives here.
"""

"""Training side (needs torch): classifiers and their zoo, Grad-CAM, the AEG-GC generator."""

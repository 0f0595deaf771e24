"""hotline: IVR and call-centre service for the 12345 citizen hotline."""

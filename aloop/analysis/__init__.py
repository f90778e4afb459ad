"""What a campaign's committee is used for once trained: observables from its MD."""

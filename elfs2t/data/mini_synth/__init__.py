"""mini_synth: a small speech corpus synthesized with espeak-ng in LibriSpeech and Common Voice + CoVoST 2 layouts."""

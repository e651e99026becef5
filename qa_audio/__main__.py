from qa_audio.cli import app

app(prog_name="qa-audio")

from qa_audio.cli.main import app

app(prog_name="qa-audio")

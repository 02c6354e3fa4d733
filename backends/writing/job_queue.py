"""The caller's side that every generation service shares: jobs queued to one worker thread, the newest
cancelling the one running, events back through each job's on_event.

A service subclasses JobQueue and writes _run_job(job); JobQueue runs it on the worker thread, turns what it
raises into a Failed event (_failure says how), and marks the job done."""

from __future__ import annotations

import itertools
import queue
import threading

from ai_writer.backends.writing.events import Failed, Finished, Job


class JobQueue:
    job_class = Job

    def __init__(self, thread_name: str):
        self._ids = itertools.count(1)
        self._queue: queue.Queue = queue.Queue()
        self._current: Job | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    def submit(self, request, on_event) -> Job:
        """Queue a request (cancelling the one running); events go to on_event on the worker thread."""
        return self._enqueue(self.job_class(next(self._ids), request, on_event))

    def submit_task(self, task, on_event) -> Job:
        """Queue task(engine, job) to run on the worker thread, as a request does: it cancels the job running,
        job.cancel() sets job.is_cancelled for the task to check, its events go through job.on_event, an exception
        becomes a Failed event (cancelled before it starts: Finished(cancelled))."""
        job = self.job_class(next(self._ids), None, on_event)
        job.task = task
        return self._enqueue(job)

    def generate(self, request, timeout: float | None = None):
        """Run one request and yield its events here, in order (for scripts and the CLI)."""
        events: queue.Queue = queue.Queue()
        job = self.submit(request, events.put)
        while True:
            event = events.get(timeout=timeout)
            yield event
            if isinstance(event, (Finished, Failed)) and event.request_id == job.id:
                return

    def close(self, wait: bool = True) -> None:
        """Cancel what runs and stop the worker; with wait, until its current job returns."""
        with self._lock:
            if self._current is not None:
                self._current.cancel()
        self._queue.put(None)
        if wait:
            self._thread.join()

    def _enqueue(self, job: Job) -> Job:
        """The job goes next; the one running is cancelled (it stops within one step)."""
        with self._lock:
            if self._current is not None:
                self._current.cancel()
            self._current = job
        self._queue.put(job)
        return job

    # -- the worker thread -------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                if job.is_cancelled:
                    job.on_event(Finished(job.id, (), True, 0.0))
                else:
                    self._run_job(job)
            except Exception as exc:  # reported, never raised on a thread nobody joins
                job.on_event(Failed(job.id, self._failure(exc)))
            finally:
                job._done.set()

    def _run_job(self, job: Job) -> None:
        raise NotImplementedError

    def _failure(self, exc: Exception) -> str:
        """The one line a job that raised `exc` fails with."""
        return f"{type(exc).__name__}: {exc}".splitlines()[0]

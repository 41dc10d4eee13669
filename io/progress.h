// A progress bar with rate and ETA on stderr (redrawn in place on a terminal; a plain line at
// most every 10 s when stderr is a file or pipe, so logs stay readable), and a parallel loop
// that reports through it. Thread-safe: workers call tick() directly.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>

namespace mc::io {

class Progress {
 public:
  // Writes to stderr; interactive when stderr is a terminal, else plain lines no closer than
  // kMinGapSeconds (a log of a long run gets one line per 10 s at most, not one per step).
  Progress(std::string label, int64_t total);
  // interactive: redraw one line with '\r' at most 10 times a second; otherwise a line per
  // `every_s` seconds or per 10% of the total, whichever comes first, but never within
  // `min_gap_s` of the previous one (the first line and the final one always print).
  // total <= 0: unknown.
  Progress(std::string label, int64_t total, std::ostream& out, bool interactive,
           double every_s = 30, double min_gap_s = 0);
  static constexpr double kMinGapSeconds = 10;
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void tick(int64_t n = 1);
  void set_note(const std::string& note);  // shown after the ETA, e.g. "3 failed"
  void finish();                           // final line with the total time (idempotent)
  int64_t done() const;

  // "label  37/120 [#######-----------------]  31% 4.2/s ETA 0:19 note"
  static std::string render(const std::string& label, int64_t done, int64_t total,
                            double elapsed_s, const std::string& note);
  static std::string format_duration(double seconds);  // "0:19", "12:05", "1:02:03"

 private:
  void draw_locked(bool final_line);
  double elapsed() const;

  std::string label_, note_;
  int64_t total_, done_ = 0, last_printed_ = -1;
  std::ostream& out_;
  bool interactive_, finished_ = false;
  double every_s_, min_gap_s_, last_draw_ = -1e9;
  std::chrono::steady_clock::time_point start_;
  mutable std::mutex mu_;
};

// Runs fn(i) for every i in [0, n) on `workers` threads (dynamic: each takes the next index),
// ticking `progress` after each. If any call throws, no new indices start and the first
// exception is rethrown once all threads have stopped.
void parallel_for(int64_t n, int workers, const std::function<void(int64_t)>& fn,
                  Progress* progress = nullptr);

}  // namespace mc::io

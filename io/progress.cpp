#include "io/progress.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <exception>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

namespace mc::io {

Progress::Progress(std::string label, int64_t total)
    : Progress(std::move(label), total, std::cerr, isatty(fileno(stderr)) == 1, 30, kMinGapSeconds) {}

Progress::Progress(std::string label, int64_t total, std::ostream& out, bool interactive,
                   double every_s, double min_gap_s)
    : label_(std::move(label)), total_(total), out_(out), interactive_(interactive),
      every_s_(every_s), min_gap_s_(min_gap_s), start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() {
  try {
    finish();
  } catch (...) {  // a destructor must not throw; the stream is all that could
  }
}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

int64_t Progress::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

void Progress::tick(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  done_ += n;
  draw_locked(false);
}

void Progress::set_note(const std::string& note) {
  std::lock_guard<std::mutex> lock(mu_);
  note_ = note;
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  draw_locked(true);
}

void Progress::draw_locked(bool final_line) {
  const double now = elapsed();
  if (!final_line) {
    if (interactive_) {
      if (now - last_draw_ < 0.1 && done_ != total_) return;
    } else {
      if (total_ > 0 && done_ >= total_) return;  // finish() prints the last line
      const int64_t step = total_ > 0 ? std::max<int64_t>(1, total_ / 10) : 0;
      const bool by_count = step > 0 && done_ / step != std::max<int64_t>(last_printed_, 0) / step;
      if (!by_count && now - last_draw_ < every_s_) return;
      if (last_printed_ >= 0 && now - last_draw_ < min_gap_s_) return;
    }
  }
  last_draw_ = now;
  last_printed_ = done_;
  std::string line = render(label_, done_, total_, now, note_);
  if (final_line) line += " (" + format_duration(now) + " total)";
  if (interactive_) out_ << "\r\033[K" << line << (final_line ? "\n" : "");
  else out_ << line << "\n";
  out_.flush();
}

std::string Progress::format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = int64_t(std::llround(s));
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(t / 3600),
                               (long long)(t / 60 % 60), (long long)(t % 60));
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

std::string Progress::render(const std::string& label, int64_t done, int64_t total,
                             double elapsed_s, const std::string& note) {
  std::ostringstream s;
  s << label << " " << done;
  const double rate = elapsed_s > 0 ? double(done) / elapsed_s : 0;
  if (total > 0) {
    const double frac = std::clamp(double(done) / double(total), 0.0, 1.0);
    constexpr int width = 24;
    const int filled = int(frac * width);
    s << "/" << total << " [" << std::string(size_t(filled), '#')
      << std::string(size_t(width - filled), '-') << "] " << int(frac * 100) << "%";
  }
  char r[32];
  std::snprintf(r, sizeof r, rate >= 10 ? "%.0f/s" : "%.2f/s", rate);
  s << " " << r;
  if (total > 0 && done < total)
    s << " ETA " << (rate > 0 ? format_duration(double(total - done) / rate) : "?");
  if (!note.empty()) s << " " << note;
  return s.str();
}

void parallel_for(int64_t n, int workers, const std::function<void(int64_t)>& fn,
                  Progress* progress) {
  workers = int(std::clamp<int64_t>(workers, 1, std::max<int64_t>(n, 1)));
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first;
  std::mutex mu;
  auto work = [&] {
    for (int64_t i; !failed && (i = next++) < n;) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!first) first = std::current_exception();
        failed = true;
      }
      if (progress) progress->tick();
    }
  };
  std::vector<std::thread> threads;
  for (int w = 1; w < workers; ++w) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace mc::io

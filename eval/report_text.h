// Pieces shared by the report's writers (eval/report*.cpp): numbers as people read them (percent
// with two decimals, as the paper reports), Markdown table rows, and the writers themselves.
// Not for other callers: eval/report.h is the interface.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "eval/report.h"
#include "io/json.h"

namespace mc::eval::report_text {

std::string pct(double v);
std::string pct(const MetricValue& v);  // "n/a" when undefined
std::string interval(const Interval& iv);
std::string cell(const MetricValue& v, const Interval* iv);  // "81.25 [70.00, 90.00]"
std::string tau_text(double t);                              // "%g": 0.5, 1, 0.25
MetricValue metric(const ClassificationMetrics& m, const std::string& name);
const Interval* ci_of(const std::optional<BootstrapResult>& ci, const std::string& name);
std::string row(const std::vector<std::string>& cells);  // "| a | b |\n"
std::string rule(size_t n);  // first column left-aligned, numbers right-aligned
std::string where(const Report& r);  // "test split, tau2 = 0.5"

// The headline metrics in report order, with their labels.
extern const std::vector<std::pair<std::string, std::string>> kMetrics;

std::string sweep_table(const Report& r);  // Markdown, also printed on the terminal
std::string hu_table(const Report& r);
std::string screening_table(const Report& r);     // operating points, Markdown
std::string screening_section(const Report& r);   // "## Screening ..." with the table and pr.svg
std::string pr_svg(const Report& r);
io::Json screening_json(const ScreeningReport& s);
std::string markdown(const Report& r);
std::string report_json(const Report& r);
std::string roc_svg(const Report& r);
std::string confusion_svg(const Report& r);
std::string sweep_svg(const Report& r);
// Calibration (eval/report_calibration.cpp): fills r.calibration (and r.calibration_scaled when
// r.run.temperature != 1) from the headline's probabilities; then its Markdown section, JSON,
// the terminal lines and reliability.svg (top label and one panel per class).
void add_calibration(Report& r, const PredictionTable& table, const BootstrapOptions& bootstrap);
std::string calibration_markdown(const Report& r);
io::Json calibration_json(const Report& r);
std::string calibration_terminal(const Report& r);
std::string reliability_svg(const Report& r);
// The run's metrics.csv as curves; nullopt (with a note in r.notes) when it cannot be read.
std::optional<std::string> curves_svg(Report& r);

}  // namespace mc::eval::report_text

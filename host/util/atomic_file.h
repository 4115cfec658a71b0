#pragma once
// Every file bachlab writes goes through here: written beside its destination under a
// temporary name, flushed to disk, then renamed over it, so a reader (or a run killed
// mid-write, or a machine losing power) sees either the old file or the complete new one,
// never a truncated mix. The temporary name is unique per process and call, so several
// processes (tuning workers) or threads rewriting the same file never write into one temp.

#include <opencv2/core.hpp>

#include <filesystem>
#include <string>

namespace torch::serialize {
class OutputArchive;
}

namespace bachlab::host {

/// Writes `content` to `file` through `<file>.<pid>.<n>.tmp` in the same folder, fsync and
/// a rename. Throws Error naming the file and the system's reason on failure; the temp file
/// is removed then.
void write_file_atomic(const std::filesystem::path& file, const std::string& content);

/// Saves a LibTorch archive (checkpoints, cached features) as write_file_atomic writes.
void write_archive_atomic(const std::filesystem::path& file, torch::serialize::OutputArchive& archive);

/// Encodes `image` (BGR) as PNG and writes it atomically.
void write_png_atomic(const std::filesystem::path& file, const cv::Mat& image);

/// Removes the temporary files that writers killed mid-write left in `folder` (not its
/// subfolders): "<name>.<pid>.<n>.tmp" (write_file_atomic) and "<name>.tmp-<pid>-<n>" (the
/// prepared-image cache) whose process no longer runs. A running writer's file is kept.
/// Returns how many were removed; a folder that cannot be listed removes nothing.
int remove_orphaned_temp_files(const std::filesystem::path& folder);

/// The whole content of `file`; throws Error naming it if it cannot be read.
std::string read_file(const std::filesystem::path& file);

}  // namespace bachlab::host

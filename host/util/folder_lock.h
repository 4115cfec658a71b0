#pragma once
// One writer per folder: a process that writes a run folder holds an advisory lock
// (flock) on <folder>/.lock for as long as it writes, so a second `run --resume`, an
// `eval` or a leftover rank of a killed launcher cannot write into it at the same time.
// The kernel drops the lock when the holder exits, however it ends (kill -9 included), so
// a stale lock never blocks a resume.

#include <filesystem>
#include <memory>

namespace bachlab::host {

class FolderLock;

/// Locks `folder` for this process, or throws Error naming the folder and the process
/// (pid) that holds it. Within one process, holding a folder again shares the one lock
/// (a cross-validation holds its folder while each fold's training holds it too); the lock
/// is released when the last holder is destroyed.
std::shared_ptr<FolderLock> hold_folder(const std::filesystem::path& folder);

}  // namespace bachlab::host

// A main for the fuzz targets without libFuzzer (the normal build, CTest's
// FuzzSmoke.<name>): runs every file given on the command line, and every
// regular file directly in each directory given, through
// LLVMFuzzerTestOneInput once, in name order. Arguments starting with '-' are
// libFuzzer flags and are ignored, so a libFuzzer command line works too.
// Prints how many inputs ran; exits 1 when there were none (a mistyped
// corpus path must not pass as a green test), 2 when a path cannot be read.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool ReadFile(const std::filesystem::path& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!arg.empty() && arg[0] == '-') continue;
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(arg, ec)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
      if (ec) {
        std::fprintf(stderr, "standalone: cannot list %s: %s\n", arg.c_str(), ec.message().c_str());
        return 2;
      }
      std::sort(files.begin(), files.end());
      inputs.insert(inputs.end(), files.begin(), files.end());
    } else if (fs::is_regular_file(arg, ec)) {
      inputs.emplace_back(arg);
    } else {
      std::fprintf(stderr, "standalone: %s is neither a file nor a directory\n", arg.c_str());
      return 2;
    }
  }
  std::string data;
  size_t ran = 0;
  for (const fs::path& p : inputs) {
    if (!ReadFile(p, &data)) {
      std::fprintf(stderr, "standalone: cannot read %s\n", p.c_str());
      return 2;
    }
    // A copy of exactly the input's size, so that ASan sees a read past its end.
    std::vector<uint8_t> copy(data.begin(), data.end());
    std::fprintf(stderr, "standalone: %s (%zu bytes)\n", p.c_str(), copy.size());
    LLVMFuzzerTestOneInput(copy.data(), copy.size());
    ++ran;
  }
  std::printf("standalone: ran %zu inputs\n", ran);
  if (ran == 0) {
    std::fprintf(stderr, "standalone: no inputs (give corpus directories or files)\n");
    return 1;
  }
  return 0;
}

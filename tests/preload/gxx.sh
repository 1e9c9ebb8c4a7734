#!/usr/bin/env bash
# g++ under the preload (cc1plus, as, collect2 and ld inherit it): compiles
# numaslub's own lib/slub/*.cpp at -O2, and a generated template-heavy program
# (regex, containers, shared_ptr, variant, iostreams) that it links and runs,
# also preloaded. GCC is deterministic with a fixed -frandom-seed, so the
# objects and the executable must be bit for bit the same; nm and size output
# is compared too, to say what differs if they are not.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
NS_NAME=gxx
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ns_require g++ g++
ns_require nm binutils
ns_require size binutils

# A snapshot of the sources, so that both runs compile the same files: the
# committed ones (HEAD) in a git checkout, where the work tree may be in the
# middle of an edit; the tree as it is otherwise.
prepare() {
  local dir=$1
  if git -C "$NS_ROOT" rev-parse --verify -q HEAD >/dev/null 2>&1; then
    git -C "$NS_ROOT" archive --format=tar HEAD lib include | tar -xf - -C "$dir"
  else
    (cd "$NS_ROOT" && tar -cf - lib include) | tar -xf - -C "$dir"
  fi
  cat >"$dir/prog.cpp" <<'CPP'
#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <numeric>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace {
std::uint64_t lcg(std::uint64_t& s) { return s = s * 6364136223846793005ULL + 1442695040888963407ULL; }

struct Node {
  int id;
  std::vector<std::shared_ptr<Node>> kids;
  std::weak_ptr<Node> parent;
};

using Value = std::variant<long, double, std::string, std::vector<int>>;

std::string describe(const Value& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        std::ostringstream os;
        if constexpr (std::is_same_v<T, std::vector<int>>) {
          os << "vec" << x.size() << ':' << std::accumulate(x.begin(), x.end(), 0L);
        } else {
          os << x;
        }
        return os.str();
      },
      v);
}
}  // namespace

int main() {
  std::uint64_t seed = 42;
  std::string text;
  for (int i = 0; i < 60000; ++i) {
    text += "w" + std::to_string(lcg(seed) % 5000);
    text += (i % 13 == 0) ? ". " : " ";
  }
  std::unordered_map<std::string, int> freq;
  std::map<std::string, int> ordered;
  std::regex word(R"(w(\d+)(\d))");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), word); it != std::sregex_iterator(); ++it) {
    ++freq[(*it)[1]];
    ordered[(*it)[2]] += 1;
  }
  std::vector<std::pair<std::string, int>> top(freq.begin(), freq.end());
  std::sort(top.begin(), top.end(), [](auto& a, auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
  std::cout << "distinct " << freq.size() << " top " << top[0].first << '=' << top[0].second << '\n';
  for (auto& [k, v] : ordered) std::cout << k << ':' << v << ' ';
  std::cout << '\n';

  std::vector<std::shared_ptr<Node>> all{std::make_shared<Node>(Node{0, {}, {}})};
  for (int i = 1; i < 50000; ++i) {
    auto parent = all[lcg(seed) % all.size()];
    auto n = std::make_shared<Node>(Node{i, {}, parent});
    parent->kids.push_back(n);
    all.push_back(std::move(n));
  }
  std::function<int(const Node&)> depth = [&](const Node& n) {
    int d = 0;
    for (auto& k : n.kids) d = std::max(d, depth(*k));
    return d + 1;
  };
  std::cout << "tree depth " << depth(*all[0]) << '\n';
  all.resize(1);

  std::list<Value> values;
  std::deque<std::string> names;
  std::set<long> seen;
  for (int i = 0; i < 40000; ++i) {
    switch (lcg(seed) % 4) {
      case 0: values.emplace_back(static_cast<long>(lcg(seed) % 1000)); break;
      case 1: values.emplace_back(static_cast<double>(lcg(seed) % 1000) / 8); break;
      case 2: values.emplace_back(std::string(lcg(seed) % 300, 'x')); break;
      default: values.emplace_back(std::vector<int>(lcg(seed) % 100, i)); break;
    }
    names.push_back(describe(values.back()));
    seen.insert(static_cast<long>(std::hash<std::string>{}(names.back()) % 100003));
    if (names.size() > 1000) names.pop_front();
  }
  std::cout << "values " << values.size() << " seen " << seen.size() << " last " << names.back() << '\n';
  return 0;
}
CPP
}

workload() {
  local out=$1 src=$NS_WORK/shared f o
  local flags=(-std=c++20 -O2 -Wall -Wextra -fno-exceptions -fno-rtti -fvisibility=hidden
    -fPIC -frandom-seed=numaslub -I. -Iinclude)
  mkdir obj
  for f in "$src"/lib/slub/*.cpp; do
    f=lib/slub/$(basename "$f")
    o=obj/$(basename "$f" .cpp).o
    # Relative paths: the source name is recorded in the object.
    (cd "$src" && tgt g++ "${flags[@]}" -c "$f" -o "$OLDPWD/$o") 2>>"$out/compile-stderr"
  done
  cp "$src/prog.cpp" .
  tgt g++ -std=c++20 -O2 -frandom-seed=numaslub -o prog prog.cpp 2>>"$out/compile-stderr"
  (cd obj && sha256sum -- *.o) >"$out/objects.sha256"
  sha256sum prog >"$out/prog.sha256"
  tgt nm -C obj/*.o prog >"$out/nm"
  tgt size obj/*.o prog >"$out/size"
  tgt ./prog >"$out/prog-stdout" 2>"$out/prog-stderr"
}

ns_main "$@"

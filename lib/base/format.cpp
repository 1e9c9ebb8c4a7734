#include "lib/base/format.h"

#include <cstring>

namespace numaslub {

void BufWriter::putc(char c) {
  if (len_ + 1 < cap_) {
    buf_[len_++] = c;
    buf_[len_] = '\0';
  } else {
    truncated_ = true;
  }
}

void BufWriter::put(const char* s) {
  while (*s) putc(*s++);
}

void BufWriter::put_padded(const char* s, std::size_t n, int width, bool left, char pad) {
  int fill = width > static_cast<int>(n) ? width - static_cast<int>(n) : 0;
  if (!left)
    for (int i = 0; i < fill; ++i) putc(pad);
  for (std::size_t i = 0; i < n; ++i) putc(s[i]);
  if (left)
    for (int i = 0; i < fill; ++i) putc(' ');
}

void BufWriter::put_num(unsigned long long v, bool neg, unsigned base, int width, bool left,
                        bool zero) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v);
  char out[25];
  int k = 0;
  if (neg) out[k++] = '-';
  while (n) out[k++] = tmp[--n];
  if (zero && neg && width > k) {
    putc('-');
    put_padded(out + 1, static_cast<std::size_t>(k - 1), width - 1, false, '0');
    return;
  }
  put_padded(out, static_cast<std::size_t>(k), width, left, zero && !left ? '0' : ' ');
}

void BufWriter::vprintf(const char* f, std::va_list ap) {
  while (*f) {
    if (*f != '%') {
      putc(*f++);
      continue;
    }
    ++f;
    bool left = false, zero = false;
    for (;; ++f) {
      if (*f == '-')
        left = true;
      else if (*f == '0')
        zero = true;
      else
        break;
    }
    int width = 0;
    while (*f >= '0' && *f <= '9') width = width * 10 + (*f++ - '0');
    int lng = 0;  // 0 int, 1 long, 2 long long, 3 size_t
    while (*f == 'l' || *f == 'z') {
      lng = *f == 'z' ? 3 : lng + 1;
      ++f;
    }
    char conv = *f ? *f++ : '\0';
    switch (conv) {
      case 's': {
        const char* s = va_arg(ap, const char*);
        if (!s) s = "(null)";
        put_padded(s, std::strlen(s), width, left, ' ');
        break;
      }
      case 'c':
        putc(static_cast<char>(va_arg(ap, int)));
        break;
      case 'd':
      case 'i': {
        long long v = lng == 0   ? va_arg(ap, int)
                      : lng == 1 ? va_arg(ap, long)
                      : lng == 2 ? va_arg(ap, long long)
                                 : static_cast<long long>(va_arg(ap, long));
        unsigned long long mag =
            v < 0 ? 0ULL - static_cast<unsigned long long>(v) : static_cast<unsigned long long>(v);
        put_num(mag, v < 0, 10, width, left, zero);
        break;
      }
      case 'u':
      case 'x': {
        unsigned long long v = lng == 0   ? va_arg(ap, unsigned)
                               : lng == 1 ? va_arg(ap, unsigned long)
                               : lng == 2 ? va_arg(ap, unsigned long long)
                                          : va_arg(ap, std::size_t);
        put_num(v, false, conv == 'u' ? 10 : 16, width, left, zero);
        break;
      }
      case 'p':
        put("0x");
        put_num(reinterpret_cast<unsigned long long>(va_arg(ap, void*)), false, 16, width, left,
                zero);
        break;
      case '%':
        putc('%');
        break;
      default:
        putc('%');
        if (conv) putc(conv);
    }
  }
}

void BufWriter::printf(const char* fmt, ...) {
  std::va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
}

std::size_t format_pid_path(char* buf, std::size_t cap, const char* pattern, long pid) {
  BufWriter w(buf, cap);
  for (const char* c = pattern; *c; ++c) {
    if (c[0] == '%' && c[1] == 'p') {
      w.printf("%ld", pid);
      ++c;
    } else {
      w.putc(*c);
    }
  }
  return w.truncated() ? 0 : w.size();
}

std::size_t format(char* buf, std::size_t cap, const char* fmt, ...) {
  BufWriter w(buf, cap);
  std::va_list ap;
  va_start(ap, fmt);
  w.vprintf(fmt, ap);
  va_end(ap);
  return w.size();
}

}  // namespace numaslub

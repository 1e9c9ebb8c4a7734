// Intrusive circular doubly-linked list, the kernel's list_head.
//
// Invariant: a ListNode is either self-linked (empty head / detached node) or
// linked into exactly one list. Nodes are embedded in the objects they link
// (page descriptors, caches), so list operations never allocate.
#pragma once

#include <cstddef>

namespace numaslub {

struct ListNode {
  ListNode* prev;
  ListNode* next;

  void init() { prev = next = this; }
  bool empty() const { return next == this; }

  // Insert n right after this node (at the head when this is a list head).
  void push_front(ListNode* n) { link(n, this, next); }
  // Insert n right before this node (at the tail when this is a list head).
  void push_back(ListNode* n) { link(n, prev, this); }

  static void unlink(ListNode* n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
  }

 private:
  static void link(ListNode* n, ListNode* p, ListNode* q) {
    n->prev = p;
    n->next = q;
    p->next = n;
    q->prev = n;
  }
};

// container_of for a ListNode embedded at member offset `off`.
template <typename T>
T* list_entry(ListNode* n, std::size_t off) {
  return reinterpret_cast<T*>(reinterpret_cast<char*>(n) - off);
}

}  // namespace numaslub

#!/usr/bin/env bash
# perl under the preload: a big hash of small arrays and hashes, string and
# regex work, deletions, sorts, an MD5 digest of everything (Digest::MD5 is
# core). Perl randomizes hash order per process, so only sorted output is
# compared.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
NS_NAME=perl
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ns_require perl perl

workload() {
  local out=$1
  cat >hash.pl <<'PERL'
use strict;
use warnings;
use Digest::MD5;

my $n = 150_000;
my %h;
for my $i (1 .. $n) {
  my $k = sprintf("key%07d-%08x", $i, ($i * 2654435761) % 4294967296);
  $h{$k} = [$i, "v" x ($i % 61), { n => $i, sq => $i * $i, s => "s$i" }];
}
print "keys ", scalar(keys %h), "\n";

# Delete a third, grow the rest: frees and reallocs of every size.
my $deleted = 0;
for my $k (keys %h) {
  if ($h{$k}[0] % 3 == 0) { delete $h{$k}; $deleted++; next; }
  $h{$k}[1] .= "w" x ($h{$k}[0] % 97);
  push @{ $h{$k} }, [map { $_ * 2 } 1 .. ($h{$k}[0] % 7)];
}
print "deleted $deleted, left ", scalar(keys %h), "\n";

my $md5 = Digest::MD5->new;
for my $k (sort keys %h) {
  my $v = $h{$k};
  $md5->add($k, ":", $v->[0], ":", length($v->[1]), ":", $v->[2]{sq}, ":", join(",", @{ $v->[3] }), "\n");
}
print "digest ", $md5->hexdigest, "\n";

# Text: split, regex captures, join, a word count.
my $text = join(" ", map { sprintf("w%x", ($_ * 7919) % 65521) } 1 .. 200_000);
my %count;
$count{$1}++ while $text =~ /\bw([0-9a-f]{2})/g;
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 9];
print "top ", join(" ", map { "$_=$count{$_}" } @top), "\n";
my @words = split / /, $text;
my @sorted = sort { length($a) <=> length($b) || $a cmp $b } @words;
print "words ", scalar(@words), " first $sorted[0] last $sorted[-1]\n";
print "sum ", eval { my $s = 0; $s += $_ for map { $_->[0] } values %h; $s }, "\n";
PERL
  tgt perl hash.pl >"$out/stdout" 2>"$out/stderr"
}

ns_main "$@"
